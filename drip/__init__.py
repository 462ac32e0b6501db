"""drip: email newsletters and drip campaigns for clinics."""

__version__ = "0.1.0"
