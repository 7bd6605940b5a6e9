"""Views of plans, drift and live state: human (rich) and machine (JSON)."""
