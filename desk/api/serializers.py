from rest_framework import serializers

from config.api.serializers import StrictCharField, StrictSerializer, StrictUUIDField


class CompanyMergeInputSerializer(StrictSerializer):
    intoCompanyId = StrictUUIDField(source="into_company_id", help_text="The company that stays.")
    reason = StrictCharField(max_length=2000, help_text="Why; kept in the history and sent to the products.")


class MergeMovedSerializer(serializers.Serializer):
    contacts = serializers.IntegerField(help_text="Contacts moved or folded into the kept company's (same email).")
    links = serializers.IntegerField(help_text="Product links re-pointed (linkType merged).")
    overrides = serializers.IntegerField(help_text="Access overrides the kept company lacked.")
    meters = serializers.IntegerField(help_text="Usage meters moved or summed into the kept company's period.")
    events = serializers.IntegerField(help_text="Usage events re-pointed.")
    wallets = serializers.IntegerField(help_text="Credit wallets emptied into the kept company's (a transfer pair).")
    subscriptions = serializers.IntegerField()


class CompanyMergeResultSerializer(serializers.Serializer):
    keptCompanyId = serializers.UUIDField(source="kept_company_id")
    moved = MergeMovedSerializer()
