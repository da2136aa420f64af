"""Detection: CloudTrail records in, findings out. Pure (no AWS calls), shared by every other package."""
