"""The internal listener: /tls-ask, /route, health and metrics, answered from memory."""
