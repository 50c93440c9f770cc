"""The engine: controller, resources, states, attributes, traces, conditions, events.

Depends on the standard library, networkx (imported when first needed) and
nest_asyncio (only inside an already running loop); never on pandas, matplotlib or
ipywidgets.
"""
