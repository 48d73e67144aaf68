// weft::sync umbrella: Lock, Event, Condition, Semaphore, BoundedSemaphore,
// Barrier, Queue family (api.md section 6).
#pragma once
