"""The response function, and the AWS reads, decisions, remediation and alerts that the sweep
and the review share with it."""
