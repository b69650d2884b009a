"""Dashboard widgets: the status header and the text charts."""
