"""The SQL store: tables, queries, SCIM filter compilation and migrations.

Only this package imports SQLAlchemy.
"""
