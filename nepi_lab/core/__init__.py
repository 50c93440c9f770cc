"""The engine: controller, resources, states, attributes, traces, conditions, events.

Depends on the standard library and networkx (imported when first needed);
never on pandas, matplotlib or
ipywidgets.
"""
