"""A stand-in for the part of Odoo 17's HTTP surface that chaoscert's probes use.

Real Odoo cannot be installed from a package registry, so the local stack runs
this instead: a plain WSGI application (`chaoscert.standin.app:application`)
with Odoo's routes, envelopes and error shapes, and the logistics models the
probes touch, stored in Postgres. Nothing else in chaoscert imports it.
"""
