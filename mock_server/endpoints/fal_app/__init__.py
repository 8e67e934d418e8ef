"""How a fal app (FastAPI + pydantic on fal's side) behaves, shared by every endpoint:
byte-exact 422s, reading input images, the network guard, placeholder rendering."""
