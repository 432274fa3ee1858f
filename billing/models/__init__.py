# Billing's models are split by concern; import them all here so Django sees them.
