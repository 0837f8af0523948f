"""The GraphQL gateway: one schema over the products and orders REST services."""
