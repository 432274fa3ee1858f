"""Recompute every wallet from its ledger and lots; exit 1 on any drift."""

from django.core.management.base import BaseCommand

from credits.models import Wallet
from credits.verify import credits_verify


class Command(BaseCommand):
    help = "Prove that every credit wallet's ledger, lots and balances agree (exit 1 on drift)."

    def handle(self, *args, **options):
        drift = credits_verify()
        for wallet_id, problems in drift.items():
            wallet = Wallet.objects.select_related("company", "product").get(pk=wallet_id)
            for problem in problems:
                self.stderr.write(f"{wallet} ({wallet_id}): {problem}")
        checked = Wallet.objects.count()
        if drift:
            self.stderr.write(f"{len(drift)} of {checked} wallets drifted.")
            raise SystemExit(1)
        self.stdout.write(f"{checked} wallets checked: ledger, lots and balances agree.")
