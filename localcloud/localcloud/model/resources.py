"""Every resource type of the model, in the order the API lists them."""
from .certificates import Certificates
from .firewalls import Firewalls
from .floating_ips import FloatingIPs
from .images import Images
from .load_balancers import LoadBalancers
from .networks import Networks
from .placement_groups import PlacementGroups
from .primary_ips import PrimaryIPs
from .servers import Servers
from .ssh_keys import SSHKeys
from .volumes import Volumes
from .zones import Zones

RESOURCE_TYPES = (SSHKeys, PlacementGroups, Networks, Firewalls, Servers, PrimaryIPs, FloatingIPs, Volumes, LoadBalancers,
                  Images, Certificates, Zones)
