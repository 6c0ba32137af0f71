"""The one exception every layer raises for input a person can correct: a bad selection, a
database URL that cannot work, a plugin that does not load. The command line reports it in one
line with exit status 2 and writes nothing; it is torch- and SQLAlchemy-free, so the command line
can catch it without importing the layers that raise it."""


class BadInput(ValueError):
    """Input the user can correct; its message says what is wrong and what to do, in one line."""
