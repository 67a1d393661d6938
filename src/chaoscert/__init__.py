"""chaoscert: chaos and failover certification for Odoo logistics workflows."""

__version__ = "0.1.0"
