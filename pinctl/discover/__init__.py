"""Discovery: turn one source (live system, topology file, gathered tree) into a Node.

Sources are interchangeable; the same model comes out of each. See
:func:`pinctl.discover.node.discover` for the entry point.
"""
