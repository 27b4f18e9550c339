"""Container state on disk (``store``) and the status model (``status``)."""
