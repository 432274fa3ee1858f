from .debits import DebitResult, RefundResult, credits_debit, credits_refund, debit_locked
from .cycles import credits_cycle_grant
from .expiry import credit_lots_expire
from .refills import AutoRefillSettings, auto_refill_set
from .purchases import (
    PurchaseLanded,
    credits_purchase_land,
    credits_purchase_reverse_to,
    credits_purchase_reversed,
)
from .reservations import (
    MAX_TTL_SECONDS,
    reservation_charge_on_expiry_set,
    reservation_create,
    reservation_expire,
    reservation_release,
    reservation_settle,
    reservation_usage_record,
    reservations_expire,
)
from .usage import UsageCreditBudget, usage_charge, usage_source_service
from .wallets import (
    GrantResult,
    credits_grant,
    lot_add,
    wallet_freeze,
    wallet_get_or_create,
    wallet_threshold_set,
    wallet_transfer,
    WalletsMerged,
    wallet_unfreeze,
    wallets_merge,
)

__all__ = [
    "WalletsMerged",
    "wallets_merge",
    "MAX_TTL_SECONDS",
    "AutoRefillSettings",
    "DebitResult",
    "auto_refill_set",
    "GrantResult",
    "UsageCreditBudget",
    "RefundResult",
    "PurchaseLanded",
    "credit_lots_expire",
    "credits_cycle_grant",
    "credits_purchase_land",
    "credits_purchase_reverse_to",
    "credits_purchase_reversed",
    "credits_debit",
    "credits_grant",
    "credits_refund",
    "debit_locked",
    "lot_add",
    "reservation_charge_on_expiry_set",
    "reservation_create",
    "reservation_expire",
    "reservation_release",
    "reservation_settle",
    "reservation_usage_record",
    "reservations_expire",
    "usage_charge",
    "usage_source_service",
    "wallet_freeze",
    "wallet_get_or_create",
    "wallet_threshold_set",
    "wallet_transfer",
    "wallet_unfreeze",
]
