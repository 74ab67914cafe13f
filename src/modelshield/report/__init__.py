"""Renderers of a finished ScanResult; they never see CLI flags."""
