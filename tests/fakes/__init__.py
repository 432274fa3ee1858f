"""Test doubles that speak real protocols over real sockets.

`tests.fakes.stripe_server.FakeStripe` is a local Stripe API (see
docs/fake-stripe.md). Import it from its module; this package stays empty so
`python -m tests.fakes.stripe_server` runs without import side effects.
"""
