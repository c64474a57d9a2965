"""Components and tools on top of the core API, as in PyCSP (plugNplay, toolkit, trace)."""
