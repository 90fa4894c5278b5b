"""SQL, one module per table group, nothing else.

Every function takes the transaction (`imboy.db.Tx`) as its first argument,
so services decide where transactions begin and end.
"""
