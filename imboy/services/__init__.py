"""The domain: accounts, users, friends, groups, messages, presence.

Services own the rules and the transactions; they call repositories for SQL
and hand events to the router after the commit.  `do_*` trusts its input,
`check_*` validates, `access_*` fetches and checks permission.
"""
