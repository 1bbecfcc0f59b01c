"""The BSI Flex 335 v2.0 message classes, from the `sapient-msg` bindings (one import point, so
changing the binding package touches this file only)."""

from sapient_msg.bsi_flex_335_v2_0.alert_ack_pb2 import AlertAck
from sapient_msg.bsi_flex_335_v2_0.alert_pb2 import Alert
from sapient_msg.bsi_flex_335_v2_0.detection_report_pb2 import DetectionReport
from sapient_msg.bsi_flex_335_v2_0.error_pb2 import Error
from sapient_msg.bsi_flex_335_v2_0.location_pb2 import (
    LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M,
    LOCATION_DATUM_WGS84_E,
    Location,
    LocationList,
)
from sapient_msg.bsi_flex_335_v2_0.range_bearing_pb2 import (
    RANGE_BEARING_COORDINATE_SYSTEM_DEGREES_M,
    RANGE_BEARING_DATUM_TRUE,
    LocationOrRangeBearing,
    RangeBearing,
    RangeBearingCone,
)
from sapient_msg.bsi_flex_335_v2_0.registration_ack_pb2 import RegistrationAck
from sapient_msg.bsi_flex_335_v2_0.registration_pb2 import Registration
from sapient_msg.bsi_flex_335_v2_0.sapient_message_pb2 import SapientMessage
from sapient_msg.bsi_flex_335_v2_0.status_report_pb2 import StatusReport
from sapient_msg.bsi_flex_335_v2_0.task_ack_pb2 import TaskAck
from sapient_msg.bsi_flex_335_v2_0.task_pb2 import Task
from sapient_msg.bsi_flex_335_v2_0.velocity_pb2 import SPEED_UNITS_MS, ENUVelocityUnits

ICD_VERSION = "BSI Flex 335 v2.0"

__all__ = [
    "ICD_VERSION",
    "LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M",
    "LOCATION_DATUM_WGS84_E",
    "RANGE_BEARING_COORDINATE_SYSTEM_DEGREES_M",
    "RANGE_BEARING_DATUM_TRUE",
    "SPEED_UNITS_MS",
    "Alert",
    "AlertAck",
    "DetectionReport",
    "ENUVelocityUnits",
    "Error",
    "Location",
    "LocationList",
    "LocationOrRangeBearing",
    "RangeBearing",
    "RangeBearingCone",
    "Registration",
    "RegistrationAck",
    "SapientMessage",
    "StatusReport",
    "Task",
    "TaskAck",
]
