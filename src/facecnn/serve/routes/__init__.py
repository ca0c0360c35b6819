"""The API's routers: the page and health, face work, and the gallery's people."""

from facecnn.serve.routes import faces, health, people

ROUTERS = (health.router, faces.router, people.router)
