"""fidele: an open-source, self-hostable loyalty and retention engine for online shops."""

__version__ = "0.1.0"
