"""What users are served: the recommendation and related-item tables (``outputs``), the
serving database with its atomic switch, the one record of what is serving (``store``), and
how many versions and models are kept (``retention``)."""
