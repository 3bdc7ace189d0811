"""Control plane: the Chime SDK Meetings REST API (HTTP shell and its pure helpers)."""
