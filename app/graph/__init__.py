"""Microsoft Graph client: everything the product does to a tenant goes through here.

``factory.GraphClientFactory`` hands out one long-lived ``client.GraphClient`` per tenant;
``auth`` turns a tenant's auth block into bearer tokens; ``requester`` + ``retry`` + ``pacing``
send each request (bounded, paced, retried only when that is safe); ``batching`` does ``$batch``;
``errors`` and ``models`` are what callers see.
"""
