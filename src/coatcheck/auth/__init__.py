"""The protocols, with no Flask: accounts, sessions, remember-me series and token
families, devices, revocation stamps and throttling, as services over a store,
the user store, a clock and signers that are passed in, never looked up."""
