from sqlalchemy import delete

from drip.models import Subscriber


def test_ids_in_signed_links_are_never_reused(runtime):
    """A deleted patient's id must not go to the next patient: it is inside unsubscribe/confirm links."""
    with runtime.sessions.begin() as s:
        a = Subscriber(email="a@example.org", email_key="a@example.org")
        s.add(a)
        s.flush()
        old_id = a.id
    with runtime.sessions.begin() as s:
        s.execute(delete(Subscriber).where(Subscriber.id == old_id))
    with runtime.sessions.begin() as s:
        b = Subscriber(email="b@example.org", email_key="b@example.org")
        s.add(b)
        s.flush()
        assert b.id > old_id
