"""Testing helpers: the store contract suite, and a test client that is logged in.

- :class:`SessionStoreContract`: a third-party store proves it keeps the
  contract of :class:`~coatcheck.stores.base.SessionStore` by running it (as
  Django ships ``SessionTestsMixin``).
- :class:`LoginClient`: a Flask test client logged in as a user, as
  Flask-Login's ``FlaskLoginClient``::

      app.test_client_class = LoginClient
      client = app.test_client(user=alice)

This package imports pytest, so it needs coatcheck's test dependencies
(``pip install coatcheck[test]``, or pytest alone). Nothing else in coatcheck
imports it: pytest stays out of production.
"""

from .client import LoginClient
from .stores import SessionStoreContract, make_record

__all__ = ["LoginClient", "SessionStoreContract", "make_record"]
