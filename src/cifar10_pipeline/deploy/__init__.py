"""Running the serving image past one process: replicas behind a load balancer (``deploy.replicas``)."""
