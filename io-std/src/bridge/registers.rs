//! Register values of upstream servers published retained (`[[upstream]] registers`).
