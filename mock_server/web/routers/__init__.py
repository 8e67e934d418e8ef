"""The web face's routers, one module per area, each exposing ``router`` (an ``APIRouter``)."""
