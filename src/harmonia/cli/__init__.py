"""The ``harmonia`` command line: thin glue that parses arguments, calls one function of
the layers below and prints the outcome."""
