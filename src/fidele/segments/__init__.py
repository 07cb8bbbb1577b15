"""Segments: rules on any criteria, compiled to one SQL query, with kept membership."""
