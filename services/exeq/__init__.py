"""exeq: routes accepted OMS orders to the live-gateway and works algorithmic parent orders (IMMEDIATE, TWAP,
VWAP, POV) as OMS child orders."""
