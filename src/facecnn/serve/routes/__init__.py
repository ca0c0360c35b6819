"""The API's routers: the page and health, face work, the gallery's people, searching its
faces, and the clusters of a `facecnn cluster` folder."""

from facecnn.serve.routes import clusters, faces, health, people, search

ROUTERS = (health.router, faces.router, people.router, search.router, clusters.router)
