"""The command line: click commands, the click-free fast paths, and the one place that prints and exits.

Kept empty so that the fast paths (pinctl/cli/fast.py) import no click.
"""
