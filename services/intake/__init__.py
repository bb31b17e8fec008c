"""The one-stop desk: receives dossiers, owns their route and slip, returns results."""
