"""Living mappings: mappings that survive terminology releases and source-list updates,
reuse of approvals across projects, dual independent mapping, and bulk actions.

Functions of a session and plain arguments, like `service/crud*.py`; every write goes through
`service.audit.record`, and callers own the transaction.
"""
