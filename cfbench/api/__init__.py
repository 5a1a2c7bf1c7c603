"""The interfaces every part of cfbench meets at: methods (``method``), metrics (``metric``) and
their protocols (``protocol``), tasks (``task``), model components (``component``), the
classifier contract (``classifier``), synthetic worlds (``world``) and the data passed between
them (``types``). Plugins (methods/, metrics/, tasks/, components/, experiments/) import these
and core, never each other."""
