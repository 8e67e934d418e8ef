"""One router per area of the web face, each a module exposing ``router = APIRouter(...)``."""
