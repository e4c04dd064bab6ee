//! Several bridges for one site without duplicates (`[dedupe]`, the `pav-id` property).
