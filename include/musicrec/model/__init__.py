"""From accepted events to factors: interactions and confidence (``prepare``), the ALS layouts
(``mllib``, and the grid layouts of the talk), the hyperparameter search (``search``), the
model files every layout writes and every reader uses (``factors``), and scoring users
against items (``scoring``)."""
