"""The planner, pure: request, placement, assignment and a rank's environment, giving a Plan (pinctl.planfile)."""
