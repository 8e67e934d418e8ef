"""The readable face: a FastAPI application serving every route, as one router per area.
The only package that imports fastapi or starlette."""
