"""The planner: request, placement, assignment, environment policy and the one Plan type."""
