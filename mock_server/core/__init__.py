"""The emulator's primitives, in plain Python: answers and fal's error bodies, the endpoint
contract, the clock, timing, the queue (the one state machine of a request), the journal,
faults (which decide, never touch a socket) and stored files.  No HTTP, no server."""
