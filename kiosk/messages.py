"""What the kiosk screen says, in zh-CN and English, keyed by the policy's decision codes.

The company's own words (docs/rules.md) are used: 领取钥匙, 归还钥匙, 事由, 值班经理…
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    zh: str
    en: str


REASONS: dict[str, Text] = {
    "repair": Text("维修", "Repair"),
    "cleaning": Text("保洁", "Cleaning"),
    "patrol": Text("巡视", "Patrol"),
    "renovation": Text("装修检查", "Renovation inspection"),
    "owner_request": Text("业主委托", "Owner's request"),
    "meter": Text("抄表", "Meter reading"),
    "viewing": Text("看房", "Viewing"),
    "emergency": Text("紧急情况", "Emergency"),
    "other": Text("其他", "Other"),
}

MESSAGES: dict[str, Text] = {
    # badge (K3)
    "card_unknown": Text("卡片未登记，请联系客服中心", "Card not registered: ask the customer-service desk"),
    "card_lost": Text("此卡已挂失，不能使用", "This card was reported lost and cannot be used"),
    "card_revoked": Text("此卡已注销", "This card has been revoked"),
    "card_inactive": Text("此卡不可用", "This card is not active"),
    "card_expired": Text("此卡已过期", "This card has expired"),
    "card_not_yet_valid": Text("此卡尚未生效", "This card is not valid yet"),
    "person_inactive": Text("人员已停用", "This person is no longer active"),
    "no_access_right": Text("您无权领取此钥匙", "You may not draw this key now"),
    "cosigner_not_custodian": Text("请由钥匙管理员刷卡确认", "A key custodian must confirm"),
    "cosigner_is_borrower": Text("领取人不能自己确认", "The borrower cannot confirm their own draw"),
    # key state
    "key_out": Text("钥匙已借出", "Key is out"),
    "key_retired": Text("钥匙已停用", "Key retired"),
    "key_no_slot": Text("钥匙未分配位置", "Key has no slot"),
    "key_not_in_slot": Text("格口内没有钥匙", "The slot's sensor sees no key"),
    "person_unknown": Text("没有此人员", "No such person"),
    "key_unknown": Text("没有这把钥匙", "No such key in this cabinet"),
    # K6 proxies
    "proxy_not_unit_key": Text("委托人只能领取业主单元钥匙", "A proxy may draw only the owner's unit key"),
    "no_authorization": Text("没有业主委托书", "No owner's letter of authorization on record"),
    "authorization_expired": Text("委托书不在有效期内", "The letter of authorization is not valid now"),
    "phone_confirmation_required": Text("需先与业主电话确认", "The owner's phone confirmation is needed first"),
    # K7
    "approval_required": Text("特殊房间：需部门领导审批", "Special room: a department leader's approval is needed"),
    "approval_requested": Text("已向部门领导申请审批", "Your department leader has been asked to approve"),
    "approval_pending": Text("已申请，等待部门领导审批", "Already asked: waiting for your leader's approval"),
    "alarms_acknowledged": Text("报警已确认", "Alarms acknowledged"),
    "not_keeper": Text("只有管理人员可以确认报警", "Only a keeper acknowledges alarms"),
    "approval_not_needed": Text("此钥匙不需要审批", "This key needs no approval"),
    "no_leader": Text("本部门没有领导可审批，请联系主管", "Nobody leads your department: ask the supervisor"),
    # K8
    "await_manager": Text("非工作时间：请值班经理刷卡", "After hours: the on-duty manager must tap now"),
    "same_person_twice": Text("需两人共同开启，请值班经理刷卡", "Two people are needed: the duty manager must tap"),
    "second_tap_too_late": Text("值班经理刷卡超时", "The duty manager tapped too late"),
    "not_on_duty": Text("刷卡人不是当班值班经理", "This person is not the rostered duty manager"),
    "manager_timeout": Text("等待值班经理超时", "Timed out waiting for the duty manager"),
    # flow
    "choose": Text("请选择钥匙和事由", "Choose the key and the reason"),
    "await_cosign": Text("请钥匙管理员刷卡确认", "A key custodian must tap to confirm"),
    "take_key": Text("请取出钥匙", "Take the key now"),
    "put_back": Text("请将钥匙放回亮灯位置", "Put the key back where the light is on"),
    "await_returner": Text("归还钥匙：请刷工卡", "Returning a key: tap your badge"),
    "returner_timeout": Text("未刷工卡，格口未打开", "No badge tapped: nothing was opened"),
    "intake_put": Text("请将新钥匙放入亮灯位置", "Hang the new key where the light is on"),
    "drawn": Text("已领取，请按时归还", "Drawn: please return it on time"),
    "returned": Text("已归还，谢谢", "Returned, thank you"),
    "returned_by_other": Text("已归还：记录为他人代还，已通知钥匙管理员", "Returned: recorded as returned by someone other than the borrower (K5)"),
    "returned_unidentified": Text("已归还：未刷工卡，已记录并通知钥匙管理员", "Returned without a badge: recorded and flagged (K5)"),
    "close_slot": Text("格口仍开着", "A compartment is still open"),
    "received": Text("钥匙已登记入柜", "Key registered into the cabinet"),
    "not_taken": Text("未取钥匙，已重新上锁", "Key not taken: locked again"),
    "return_timeout": Text("未放回钥匙，已重新上锁", "Key not put back: locked again"),
    "intake_timeout": Text("未放入钥匙，已重新上锁", "Key not hung: locked again"),
    # K1/K2 stocking a new cabinet (kiosk/cabinet/flows/stock.py)
    "stock_put": Text("请将每把钥匙挂入其亮灯的格口", "Hang each key in its lit slot"),
    "stocked": Text("上架完成，格口已锁好", "Stocking done: slots locked"),
    "stock_ended": Text("上架结束，未放入的格口已重新上锁", "Stocking ended: empty slots locked again"),
    "stock_timeout": Text("上架超时，未放入的格口已重新上锁", "Stocking timed out: empty slots locked again"),
    "stock_not_custodian": Text("只有钥匙管理员可以上架钥匙", "Only a key custodian may stock keys"),
    "nothing_to_stock": Text("没有待上架的钥匙", "No key is waiting to be stocked"),
    "key_not_stocked": Text("钥匙尚未上架，不在柜中", "The key is not stocked in the cabinet yet"),
    "choose_timeout": Text("操作超时", "Timed out"),
    "cosign_timeout": Text("等待确认超时", "Timed out waiting for confirmation"),
    "cancelled": Text("已取消", "Cancelled"),
    "reason_required": Text("请选择事由", "Choose a reason"),
    "intake_not_custodian": Text("只有钥匙管理员可以登记钥匙", "Only a key custodian may register keys"),
    "no_free_slot": Text("没有空位", "No free slot"),
    "duplicate_key_number": Text("钥匙编号已存在", "That key number already exists"),
    # Issue 16: "已通知管理员" only where an alarm was recorded (and so notified); a storage
    # fault records nothing, so the screen asks the person to tell staff instead.
    "storage_fault": Text("记录失败，未开锁，请告知管理员", "Could not record it: nothing opened; please tell staff"),
    "decision_stale": Text("情况有变，未开锁，请重新选择", "Something changed meanwhile: nothing opened; please choose again"),
    "lock_fault": Text("锁故障，已通知管理员", "Lock fault: staff have been alerted"),
    "unknown_room": Text("没有这个房号，请核对", "No such room in this building: check the number"),
    "fob_paired": Text("钥匙牌已配对", "Fob paired"),
    "fob_in_use": Text("此钥匙牌已属于其他钥匙", "This fob belongs to another key"),
    "return_home_only": Text("此钥匙只能放回原格口", "This key goes back to its own slot"),
    "cooling_down": Text("格口冷却中，请稍后再试", "Slot cooling down: retry shortly"),
    "wrong_key": Text("这不是该格口的钥匙", "This is not the key for this slot"),
    "lock_fault_unrecorded": Text("锁故障，记录失败，请告知管理员", "Lock fault, not recorded: please tell staff"),
    "busy": Text("请稍候", "Please wait"),
    "not_on_loan": Text("这把钥匙没有借出", "This key is not out"),
    # H1 shift handover
    "await_incoming": Text("交接班：请接班人刷卡确认", "Shift handover: the incoming staff member taps to accept"),
    "handed_over": Text("交接班完成，报告已保存", "Handover accepted: the report is stored"),
    "incoming_timeout": Text("接班人未刷卡，交接班仍在等待确认", "No one accepted yet: the handover is still waiting"),
    "handover_not_keeper": Text("只有钥匙管理员、值班经理或主管可以交接班", "Only a custodian, duty manager or supervisor can sign a handover"),
    "handover_same_person": Text("交班人和接班人不能是同一人", "The incoming staff member must be someone else"),
    "handover_pending": Text("已有交接班等待确认", "A handover is already waiting to be accepted"),
    "handover_none": Text("没有等待确认的交接班", "No handover is waiting to be accepted"),
    # PIN, the second factor (README "PIN and duress")
    "pin_wrong": Text("PIN 错误", "Wrong PIN"),
    "pin_locked": Text("PIN 错误次数过多，此卡已锁定", "Too many wrong PINs: this card is locked"),
    "pin_not_set": Text("需要 PIN，您还没有设置：请找钥匙管理员重置后设置", "A PIN is needed and you have none: ask a key custodian to reset it, then set one"),
    "pin_not_asked": Text("现在不需要输入 PIN", "No PIN is asked for now"),
    "pin_old_wrong": Text("原 PIN 错误", "The current PIN is wrong"),
    "pin_set": Text("PIN 已设置", "PIN set"),
    "pin_changed": Text("PIN 已修改", "PIN changed"),
    "pin_format": Text("PIN 须为 4 至 8 位数字", "A PIN has 4 to 8 digits"),
    "pin_too_simple": Text("PIN 太简单（如 0000、1234）", "That PIN is too easy to guess (0000, 1234)"),
    "duress_same_as_pin": Text("胁迫 PIN 不能与 PIN 相同", "The duress PIN must differ from the PIN"),
    "pin_mismatch": Text("两次输入的 PIN 不一致", "The two PINs do not match"),
    # card enrolment started in the console (issue 11)
    "enrolling": Text("登记卡片：请刷新卡", "Enrolling a card: tap the new card"),
    "card_enrolled": Text("卡片已登记", "Card enrolled"),
    "card_known": Text("此卡已登记，请刷一张新卡", "This card is already on record: tap a new card"),
    "enrol_timeout": Text("登记卡片已超时", "Card enrolment timed out"),
}


def text(code: str) -> Text:
    return MESSAGES.get(code, Text(code, code))


WHY: dict[str, Text] = {
    # the short reason on a key's tile (the screen never hides why a key cannot be drawn)
    "key_out": Text("已借出", "Out"),
    "approval_required": Text("需领导审批 — 申请", "Ask for approval"),
    "phone_confirmation_required": Text("需业主电话确认", "Owner must phone"),
    "authorization_expired": Text("委托书不在有效期", "Letter not valid now"),
    "no_access_right": Text("无权领取", "Not yours to draw"),
    "key_retired": Text("已停用", "Retired"),
    "key_no_slot": Text("无格口", "No slot"),
}
