"""Machine-readable reasons of the billing app's errors (`details.reason`)."""

from enum import StrEnum


class BillingErrorCode(StrEnum):
    WEBHOOK_SIGNATURE_INVALID = "webhook_signature_invalid"
    WEBHOOK_TIMESTAMP_OUTSIDE_TOLERANCE = "webhook_timestamp_outside_tolerance"
    WEBHOOK_PAYLOAD_INVALID = "webhook_payload_invalid"
    WEBHOOK_PROCESSING_FAILED = "webhook_processing_failed"
    MERGE_BOTH_STRIPE_CUSTOMERS = "merge_both_stripe_customers"
