//! The marketplace side: a client for the Healthengine PMS API v1.9.0.
