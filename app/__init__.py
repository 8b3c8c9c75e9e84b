"""MSA Studio desktop application (PySide6 + pyqtgraph). No analysis logic lives here: the panels
draw what analysis/ and core/ compute; view-models (analysis.session_model, live_controller) hold the state."""
