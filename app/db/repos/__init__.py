"""One repository per aggregate. Repositories hold the session and never commit."""
